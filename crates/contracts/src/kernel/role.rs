//! What a user may do.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The role of a service token (one context calling another): a caller, never a user's role, so
/// it is not a [`Role`] and no account can be given it.
pub const SERVICE_ROLE: &str = "service";

/// A user's role, as identity assigns it and every access token carries it (the snake_case
/// name, which is also how it is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Support,
    CatalogManager,
    Fulfilment,
    Admin,
}

/// A role name no user can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be one of customer, support, catalog_manager, fulfilment, admin")]
pub struct RoleError;

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Customer,
        Role::Support,
        Role::CatalogManager,
        Role::Fulfilment,
        Role::Admin,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Support => "support",
            Role::CatalogManager => "catalog_manager",
            Role::Fulfilment => "fulfilment",
            Role::Admin => "admin",
        }
    }

    /// Exactly the snake_case name: roles are machine names, not user input to be forgiven.
    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw).ok_or(RoleError)
    }
}

impl std::str::FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Role {
    type Error = RoleError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
            assert_eq!(serde_json::to_value(role).expect("json"), role.as_str());
            assert_eq!(
                serde_json::from_value::<Role>(role.as_str().into()).expect("role"),
                role
            );
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        for bad in ["", "Admin", " admin", "root", SERVICE_ROLE, "catalog-manager"] {
            assert_eq!(Role::parse(bad), Err(RoleError), "{bad:?}");
        }
        let names = Role::ALL.map(Role::as_str).join(", ");
        assert_eq!(RoleError.to_string(), format!("must be one of {names}"));
    }
}
