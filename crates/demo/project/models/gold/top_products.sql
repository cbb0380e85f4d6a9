/*---
description: The 20 products with the most revenue.
---*/
SELECT
    p.id                                   AS product_id,
    p.name,
    p.category,
    sum(i.quantity)                        AS units,
    sum(i.quantity * i.unit_price)         AS revenue
FROM {{ ref('bronze.erp_order_items') }} i
JOIN {{ ref('silver.orders') }} o ON o.id = i.order_id AND o.status <> 'returned'
JOIN {{ ref('bronze.erp_products') }} p ON p.id = i.product_id
GROUP BY 1, 2, 3
ORDER BY revenue DESC
LIMIT 20
