/*---
description: Revenue and orders per month and customer country (returned orders excluded).
columns:
  month: { description: First day of the month of the order date. }
  revenue: { description: Sum of order totals. }
expectations:
  - row_count: { min: 1 }
---*/
SELECT
    CAST(date_trunc('month', o.order_date) AS DATE) AS month,
    coalesce(c.country, 'unknown')        AS country,
    count(*)                              AS orders,
    sum(o.total)                          AS revenue
FROM {{ ref('silver.orders') }} o
LEFT JOIN {{ ref('silver.customers') }} c ON c.id = o.customer_id
WHERE o.status <> 'returned'
GROUP BY 1, 2
