/*---
# Type-2 history of where customers live: a new version whenever name, e-mail, country or
# city change; valid_from / valid_to / is_current say which version held when.
description: Customer address history (SCD type 2).
materialized: scd2
unique_key: id
check_columns: [name, email, country, city]
---*/
SELECT id, name, email, country, city
FROM {{ ref('silver.customers') }}
