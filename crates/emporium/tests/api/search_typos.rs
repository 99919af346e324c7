//! Search that forgives typos, on both backends: when the words as typed find fewer than three
//! products, each misspelled word is corrected to the closest word of product names and brands
//! (edit distance 1 from 4 letters, 2 from 8, the most used among equals), the answer says
//! `did_you_mean`, and the corrected results follow the exact ones. Suggestions fall back the
//! same way, and the storefront's search page offers the correction. Words that are in the
//! catalog are never "corrected".

use serde_json::{Value, json};

use test_support::app::TestApp;
use test_support::requests::{create_product, json_of};

test_support::on_both_backends!(misspelled_searches_find_the_meant_products_below_exact_matches);

async fn search(app: &TestApp, q: &str) -> Value {
    json_of(
        app.client
            .get(app.url("/api/v1/catalog/search"))
            .query(&[("q", q)])
            .send()
            .await
            .expect("search"),
        200,
    )
    .await
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn misspelled_searches_find_the_meant_products_below_exact_matches(backend: test_support::Backend) {
    let Some(app) = test_support::app::spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    for (sku, name, description, brand) in [
        ("TY-1", "Cotton Shirt", "A plain shirt.", "Northwind"),
        ("TY-2", "Cotton Tote", "A bag.", "Northwind"),
        ("TY-3", "Denim Jacket", "Blue.", "Rivet"),
        ("TY-4", "Wool Jacket", "Warm.", "Rivet"),
        ("TY-5", "Rain Poncho", "Like a jaket, only lighter.", "Drizzle"),
        ("TY-6", "Carton Box", "Cardboard.", "Boxwell"),
    ] {
        create_product(
            &app,
            &admin.access,
            json!({"sku": sku, "name": name, "description": description, "brand": brand,
                   "price": {"amount": 2500}, "status": "active"}),
        )
        .await;
    }

    // Nothing as typed: the corrected words find what was meant.
    let page = search(&app, "coton shrit").await;
    assert_eq!(page["did_you_mean"], "cotton shirt", "{page}");
    assert_eq!(names(&page), ["Cotton Shirt"]);
    assert_eq!(page["total"], 1);
    let page = search(&app, "northwnd").await;
    assert_eq!(page["did_you_mean"], "northwind", "brands count too: {page}");
    assert_eq!(names(&page).len(), 2);

    // One exact match (a description mentions "jaket"): it stays first, the jackets follow.
    let page = search(&app, "jaket").await;
    assert_eq!(page["did_you_mean"], "jacket", "{page}");
    let found = names(&page);
    assert_eq!(found[0], "Rain Poncho", "exact matches rank first: {found:?}");
    assert_eq!(found[1..].len(), 2, "{found:?}");
    assert!(found[1..].iter().all(|n| n.ends_with("Jacket")), "{found:?}");
    assert_eq!(page["total"], 3);

    // Enough exact results, catalog words, short words and far-off words are left alone.
    for q in ["cotton", "carton", "box", "zzzzzz", "jacket"] {
        let page = search(&app, q).await;
        assert!(page.get("did_you_mean").is_none(), "{q}: {page}");
    }
    assert_eq!(search(&app, "zzzzzz").await["total"], 0);

    // Suggestions (search-as-you-type) forgive the same typos.
    let suggest = json_of(
        app.client
            .get(app.url("/api/v1/catalog/suggest"))
            .query(&[("q", "denim jackt")])
            .send()
            .await
            .expect("suggest"),
        200,
    )
    .await;
    let suggested: Vec<&str> = suggest["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(suggested, ["Denim Jacket"], "{suggest}");

    // The storefront says so, with a link that searches the correction.
    let html = app
        .client
        .get(app.url("/search?q=coton+shrit"))
        .send()
        .await
        .expect("search page")
        .text()
        .await
        .expect("html");
    assert!(html.contains(r#"data-testid="did-you-mean""#), "{html}");
    assert!(
        html.contains("<strong>cotton shirt</strong>") && html.contains("Cotton Shirt"),
        "{html}"
    );
    assert!(
        html.contains("q=cotton+shirt"),
        "the correction is one click away: {html}"
    );
}
