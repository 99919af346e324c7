//! [`routes!`](crate::routes): `utoipa_axum::routes!` for the contexts' routers, with the
//! handlers' OpenAPI operations built in code only where the document is generated.
//!
//! Building every operation (parameters, bodies, response schemas) is code: 1.6 MB of the release
//! binary, run once at start-up to make a document that only changes with the source. So the
//! binary serves the checked-in `crates/emporium/openapi.json`, and its routers are built from each
//! handler's path and methods alone. With the `openapi` feature (every test build turns it on)
//! the macro is utoipa's own and the document is generated
//! ([`DOCUMENT_GENERATED`](crate::docs::DOCUMENT_GENERATED)); a test in the `emporium` crate
//! keeps the checked-in file equal to it.

/// `utoipa_axum::routes!(handler, ...)`: the handlers on their `#[utoipa::path]` path and methods,
/// with their operations in the router's document.
#[cfg(feature = "openapi")]
#[macro_export]
macro_rules! routes {
    ($($handler:ident),+ $(,)?) => {
        ::utoipa_axum::routes!($($handler),+)
    };
}

/// `utoipa_axum::routes!(handler, ...)` without the operations: the same routing (each handler on
/// its `#[utoipa::path]` path and methods), while the router's document lists the paths only.
#[cfg(not(feature = "openapi"))]
#[macro_export]
macro_rules! routes {
    ($($handler:ident),+ $(,)?) => {{
        use ::utoipa_axum::PathItemExt as _;
        let mut paths = ::utoipa::openapi::path::Paths::new();
        let mut method_router = ::axum::routing::MethodRouter::new();
        $(
            let path: ::std::string::String = ::utoipa_axum::routes!(@path [path()] of $handler);
            let methods = ::utoipa_axum::routes!(@path [methods()] of $handler);
            method_router = methods
                .iter()
                .fold(method_router, |router, method| router.on(method.to_method_filter(), $handler));
            paths.add_path_operation(&path, methods, ::utoipa::openapi::path::Operation::new());
        )+
        (::std::vec::Vec::new(), paths, method_router)
    }};
}
