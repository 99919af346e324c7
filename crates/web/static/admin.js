/* admin pages: owned by the admin area (see crates/web/src/admin). */
