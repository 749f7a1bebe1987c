//! Commerce over HTTP: a handler extracts, calls the handle (or its
//! executor), and answers.

pub mod catalog;
pub mod checkout;
pub mod orders;

pub use catalog::*;
pub use checkout::*;
pub use orders::*;

use actix_web::web;

/// This domain's routes (mounted under `/api/v1` by the server).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/merchants", web::post().to(apply_merchant))
        .route("/merchants/{id}", web::get().to(get_merchant))
        .route("/merchants/{id}/orders", web::get().to(merchant_orders))
        .route("/admin/merchants", web::get().to(list_merchants))
        .route("/me/merchants", web::get().to(my_merchants))
        .route(
            "/admin/merchants/{id}/approve",
            web::post().to(approve_merchant),
        )
        .route(
            "/admin/merchants/{id}/reject",
            web::post().to(reject_merchant),
        )
        .route("/products", web::post().to(create_product))
        .route("/products", web::get().to(list_products))
        .route("/products/{id}", web::get().to(get_product))
        .route("/products/{id}", web::patch().to(update_product))
        .route("/orders", web::post().to(create_order))
        .route("/orders", web::get().to(my_orders))
        .route("/admin/orders", web::get().to(admin_orders))
        .route("/orders/{id}", web::get().to(get_order))
        .route("/orders/{id}/cancel", web::post().to(cancel))
        .route("/orders/{id}/review", web::post().to(review))
        .route("/merchants/{id}/reviews", web::get().to(merchant_reviews))
        .route("/merchants/{id}/dashboard", web::get().to(dashboard))
        .route("/orders/{id}/pay", web::post().to(pay))
        .route("/orders/{id}/ship", web::post().to(ship))
        .route("/orders/{id}/address", web::post().to(give_address))
        .route("/gifts/received", web::get().to(gifts_received))
        .route("/orders/{id}/confirm", web::post().to(confirm))
        .route("/orders/{id}/refund", web::post().to(refund))
        .route(
            "/orders/{id}/refund/approve",
            web::post().to(approve_refund),
        )
        .route("/orders/{id}/refund/reject", web::post().to(reject_refund))
        .route("/payments/mockpay/notify", web::post().to(mockpay_notify))
        .route(
            "/payments/mockpay/checkout",
            web::post().to(mockpay_checkout),
        );
}

/// This domain's part of the OpenAPI document (merged by the server).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    apply_merchant,
    get_merchant,
    merchant_orders,
    admin_orders,
    list_merchants,
    my_merchants,
    approve_merchant,
    reject_merchant,
    create_product,
    list_products,
    get_product,
    update_product,
    create_order,
    my_orders,
    get_order,
    cancel,
    pay,
    ship,
    give_address,
    gifts_received,
    confirm,
    refund,
    approve_refund,
    reject_refund,
    mockpay_notify,
    mockpay_checkout,
    review,
    merchant_reviews,
    dashboard,
))]
pub struct Api;
