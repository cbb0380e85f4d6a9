/*---
# One row per customer, cleaned. Rebuilt on every run (the ERP table is small).
description: Customers from the ERP, one row per id, e-mail normalised.
materialized: table
unique_key: id            # keep one row per id ...
order_by: _tributary_loaded_at   # ... the one loaded last
columns:
  email: { description: "Lower-cased, trimmed e-mail address; NULL when the ERP has none." }
expectations:
  - not_null: id
  - unique: id
  - regex: { column: email, pattern: '^[^@\s]+@[^@\s]+\.[a-z]+$' }
    on_fail: warn          # report odd addresses, keep the customers
---*/
SELECT
    id,
    trim(name)                AS name,
    lower(trim(email))        AS email,
    upper(country)            AS country,
    city,
    created_at,
    is_active,
    _tributary_loaded_at
FROM {{ ref('bronze.erp_customers') }}
