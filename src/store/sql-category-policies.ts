/** Category policies in SQL: one row per category, the policy (without its name) as jsonb. */
import type { CategoryPolicyStore } from '../core/ports.ts';
import type { CategoryPolicy } from '../core/types.ts';
import type { Sql } from './sql.ts';

interface PolicyRow {
  category: string;
  policy: Omit<CategoryPolicy, 'category' | 'updatedAt'>;
  updated_at: Date;
}

const toPolicy = (r: PolicyRow): CategoryPolicy => ({
  ...r.policy,
  category: r.category,
  updatedAt: new Date(r.updated_at),
});

export class SqlCategoryPolicyStore implements CategoryPolicyStore {
  constructor(private readonly sql: Sql) {}

  async putCategoryPolicy(policy: Omit<CategoryPolicy, 'updatedAt'>): Promise<CategoryPolicy> {
    const { category, ...rest } = policy;
    const [row] = await this.sql.query<PolicyRow>(
      `INSERT INTO category_policies (category, policy) VALUES ($1, $2::jsonb)
       ON CONFLICT (category) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()
       RETURNING category, policy, updated_at`,
      [category, JSON.stringify(rest)],
    );
    return toPolicy(row as PolicyRow);
  }

  async getCategoryPolicy(category: string): Promise<CategoryPolicy | null> {
    const [row] = await this.sql.query<PolicyRow>(
      'SELECT category, policy, updated_at FROM category_policies WHERE category = $1',
      [category],
    );
    return row ? toPolicy(row) : null;
  }

  async deleteCategoryPolicy(category: string): Promise<boolean> {
    const rows = await this.sql.query('DELETE FROM category_policies WHERE category = $1 RETURNING category', [
      category,
    ]);
    return rows.length > 0;
  }
}
