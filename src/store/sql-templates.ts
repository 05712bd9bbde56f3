/** Templates per category in SQL: one row each, the definition as jsonb. */
import type { StoredTemplate, TemplateStore } from '../core/ports.ts';
import type { Template } from '../core/template-render.ts';
import type { Sql } from './sql.ts';

interface TemplateRow {
  category: string;
  definition: Template;
  updated_at: Date;
}

const toTemplate = (r: TemplateRow): StoredTemplate => ({
  category: r.category,
  defaultLocale: r.definition.defaultLocale,
  locales: r.definition.locales,
  updatedAt: new Date(r.updated_at),
});

export class SqlTemplateStore implements TemplateStore {
  constructor(private readonly sql: Sql) {}

  async putTemplate(category: string, template: Template): Promise<StoredTemplate> {
    const definition = { defaultLocale: template.defaultLocale, locales: template.locales };
    const [row] = await this.sql.query<TemplateRow>(
      `INSERT INTO templates (category, definition) VALUES ($1, $2::jsonb)
       ON CONFLICT (category) DO UPDATE SET definition = EXCLUDED.definition, updated_at = now()
       RETURNING category, definition, updated_at`,
      [category, JSON.stringify(definition)],
    );
    return toTemplate(row as TemplateRow);
  }

  async getTemplate(category: string): Promise<StoredTemplate | null> {
    const [row] = await this.sql.query<TemplateRow>(
      'SELECT category, definition, updated_at FROM templates WHERE category = $1',
      [category],
    );
    return row ? toTemplate(row) : null;
  }

  async deleteTemplate(category: string): Promise<boolean> {
    const rows = await this.sql.query('DELETE FROM templates WHERE category = $1 RETURNING category', [category]);
    return rows.length > 0;
  }
}
