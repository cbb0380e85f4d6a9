{# Macros are callable from every model. #}
{% macro normalise_currency(column) -%}
upper(coalesce({{ column }}, '{{ var("default_currency", "EUR") }}'))
{%- endmacro %}
