/* storefront pages: owned by the storefront area (see crates/web/src/storefront). */
