-- Liquid templates per category (PUT /v1/templates/{category}): the validated definition
-- ({"defaultLocale", "locales"}) as the producer sent it. One row per category; a PUT replaces it.
CREATE TABLE templates (
  category text PRIMARY KEY,
  definition jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
