//! Which context answers which path: the gateway's route table.

/// A context the gateway forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Upstream {
    Identity,
    Catalog,
    Inventory,
    Cart,
    Ordering,
    Payments,
    Notifications,
}

impl Upstream {
    pub const ALL: [Upstream; 7] = [
        Upstream::Identity,
        Upstream::Catalog,
        Upstream::Inventory,
        Upstream::Cart,
        Upstream::Ordering,
        Upstream::Payments,
        Upstream::Notifications,
    ];

    /// The context's name, as in metrics labels and `EMPORIUM_UPSTREAM_<NAME>`.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Identity => "identity",
            Upstream::Catalog => "catalog",
            Upstream::Inventory => "inventory",
            Upstream::Cart => "cart",
            Upstream::Ordering => "ordering",
            Upstream::Payments => "payments",
            Upstream::Notifications => "notifications",
        }
    }

    /// The setting naming the context's base URL.
    pub fn variable(self) -> String {
        format!("EMPORIUM_UPSTREAM_{}", self.name().to_ascii_uppercase())
    }
}

/// Path prefixes and their contexts. A prefix matches the path itself or anything below it
/// (`/api/v1/cart` and `/api/v1/cart/items`, never `/api/v1/cartography`). Each context's
/// dead-letter admin (`/api/v1/<context>/admin/dead-letters`) falls under its own name.
const TABLE: &[(&str, Upstream)] = &[
    ("/api/v1/auth", Upstream::Identity),
    ("/api/v1/users", Upstream::Identity),
    ("/api/v1/identity", Upstream::Identity),
    ("/.well-known/jwks.json", Upstream::Identity),
    // Fault injection is set through identity, which records every change in its audit log.
    ("/api/v1/admin/faults", Upstream::Identity),
    ("/api/v1/catalog", Upstream::Catalog),
    ("/api/v1/inventory", Upstream::Inventory),
    ("/api/v1/cart", Upstream::Cart),
    ("/api/v1/orders", Upstream::Ordering),
    ("/api/v1/ordering", Upstream::Ordering),
    ("/api/v1/payments", Upstream::Payments),
    ("/api/v1/notifications", Upstream::Notifications),
    // The development mailbox lives with the mail sender.
    ("/api/v1/dev", Upstream::Notifications),
];

/// The context that serves `path`, if any.
pub fn upstream_for(path: &str) -> Option<Upstream> {
    TABLE.iter().find_map(|(prefix, upstream)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(*upstream)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_prefix_reaches_its_context() {
        let cases = [
            ("/api/v1/auth/login", Upstream::Identity),
            ("/api/v1/users/me/sessions", Upstream::Identity),
            ("/api/v1/identity/admin/dead-letters", Upstream::Identity),
            ("/.well-known/jwks.json", Upstream::Identity),
            ("/api/v1/admin/faults", Upstream::Identity),
            ("/api/v1/catalog/products/by-slug/red-shoe", Upstream::Catalog),
            ("/api/v1/catalog/admin/dead-letters/1/replay", Upstream::Catalog),
            ("/api/v1/inventory", Upstream::Inventory),
            ("/api/v1/inventory/SKU-1/movements", Upstream::Inventory),
            ("/api/v1/cart", Upstream::Cart),
            ("/api/v1/cart/items/SKU-1", Upstream::Cart),
            ("/api/v1/orders", Upstream::Ordering),
            ("/api/v1/orders/admin/coupons/SAVE10", Upstream::Ordering),
            ("/api/v1/ordering/admin/dead-letters", Upstream::Ordering),
            ("/api/v1/payments/webhooks/test", Upstream::Payments),
            ("/api/v1/notifications/preferences", Upstream::Notifications),
            ("/api/v1/dev/mailbox", Upstream::Notifications),
        ];
        for (path, expected) in cases {
            assert_eq!(upstream_for(path), Some(expected), "{path}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        assert_eq!(upstream_for("/api/v1/cartography"), None);
        assert_eq!(upstream_for("/api/v1/ordersx"), None);
        assert_eq!(upstream_for("/api/v2/catalog/products"), None);
        assert_eq!(upstream_for("/api/v1"), None);
        assert_eq!(upstream_for("/.well-known/jwks.json.bak"), None);
        assert_eq!(upstream_for("/shop"), None);
    }

    #[test]
    fn variables_name_the_context() {
        assert_eq!(Upstream::Notifications.variable(), "EMPORIUM_UPSTREAM_NOTIFICATIONS");
    }
}
