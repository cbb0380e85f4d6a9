/*---
# Orders, merged incrementally: each run reads only the bronze rows loaded since the last run
# and MERGEs them by id, keeping the latest version of each order (by updated_at).
description: ERP orders, latest version of each order, validated.
materialized: incremental
unique_key: id
order_by: updated_at
partition_by: []
expectations:
  - not_null: total
    on_fail: drop          # orders without a total go to silver._quarantine_orders
  - accepted_values:
      column: status
      values: [pending, paid, shipped, delivered, returned, cancelled]
    on_fail: fail          # an unknown status stops the model: the table keeps its last version
  - relationships: { column: customer_id, to: silver.customers, field: id }
    on_fail: warn
  - range: { column: total, min: 0 }
    name: total_not_negative
    on_fail: drop
---*/
SELECT
    id,
    customer_id,
    status,
    order_date,
    total,
    {{ normalise_currency('currency') }} AS currency,
    created_at,
    updated_at
FROM {{ ref('bronze.erp_orders') }}
