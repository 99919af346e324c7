#!/usr/bin/env bash
# The co-purchase read model behind recommendations at 100k confirmed orders: the cost of counting
# one order (every pair of its products, once per order) and of reading recommendations for a
# product and for a cart of 3, on SQLite and PostgreSQL, below HTTP (the store itself).
#   bench/recommendations.sh [orders] [products]     # defaults: 100000 orders, 10000 products
# Baskets hold 2 to 5 products skewed towards best sellers, deterministic run to run. Runs the
# ignored load test `co_purchases_at_a_hundred_thousand_orders` with --release (the first build
# takes several minutes). CATALOG_LOAD_BACKEND=sqlite|postgres runs one backend. PostgreSQL must
# be reachable (postgres@127.0.0.1:5432, or DATABASE_URL). Copy the figures into
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-100000}
products=${2:-10000}
case "$orders$products" in *[!0-9]*) echo "usage: $0 [orders] [products] (whole numbers)" >&2; exit 2;; esac
echo "building and running the load test (release; the first build takes several minutes)..." >&2
CATALOG_LOAD_ORDERS=$orders CATALOG_LOAD_PRODUCTS=$products \
  cargo test --release --quiet --locked -p catalog --test store_suite -- \
  --ignored --exact co_purchases_at_a_hundred_thousand_orders --nocapture 2>&1 \
  | grep -E '^(sqlite|postgres):|test result|panicked|error'
