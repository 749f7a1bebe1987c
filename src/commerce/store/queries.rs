//! Order lists (buyer's and merchant's), on the database executor.

use actix::{Handler, Message};
use diesel::prelude::*;

use super::{self as store, OrderRow};
use crate::commerce::model::OrderView;
use crate::core::error::ApiError;
use crate::core::paging::Page;
use crate::storage::schema::orders;
use crate::storage::DbExecutor;

pub enum OrderScope {
    Buyer(i64),
    /// Gifts bought for this user.
    Recipient(i64),
    /// Order search for admins, by buyer and/or merchant (or all).
    Admin {
        admin: crate::core::ids::UserId,
        buyer_id: Option<i64>,
        merchant_id: Option<i64>,
    },
    /// A merchant's orders; `caller` must own it or be an admin.
    Merchant {
        merchant_id: i64,
        caller: i64,
    },
}

pub struct ListOrders {
    pub scope: OrderScope,
    pub status: Option<String>,
    pub limit: i64,
    pub before_id: Option<i64>,
}

impl Message for ListOrders {
    type Result = Result<Page<OrderView>, ApiError>;
}

impl Handler<ListOrders> for DbExecutor {
    type Result = Result<Page<OrderView>, ApiError>;
    fn handle(&mut self, msg: ListOrders, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        let mut q = orders::table.into_boxed();
        match msg.scope {
            OrderScope::Buyer(b) => q = q.filter(orders::buyer_id.eq(b)),
            OrderScope::Recipient(r) => q = q.filter(orders::gift_to_user_id.eq(r)),
            OrderScope::Admin {
                admin,
                buyer_id,
                merchant_id,
            } => {
                crate::accounts::tx::require_role(
                    &mut conn,
                    admin,
                    crate::accounts::domain::Role::Admin,
                )?;
                if let Some(b) = buyer_id {
                    q = q.filter(orders::buyer_id.eq(b));
                }
                if let Some(m) = merchant_id {
                    q = q.filter(orders::merchant_id.eq(m));
                }
            }
            OrderScope::Merchant {
                merchant_id,
                caller,
            } => {
                let m = store::find_merchant(&mut conn, merchant_id)?
                    .ok_or_else(|| ApiError::not_found("no such merchant"))?;
                if m.owner_id != caller {
                    let is_admin = crate::accounts::tx::is_admin(&mut conn, caller)?;
                    if !is_admin {
                        return Err(ApiError::forbidden("only the merchant's owner or an admin"));
                    }
                }
                q = q.filter(orders::merchant_id.eq(merchant_id));
            }
        }
        if let Some(s) = msg.status {
            q = q.filter(orders::status.eq(s));
        }
        if let Some(b) = msg.before_id {
            q = q.filter(orders::id.lt(b));
        }
        let mut rows: Vec<OrderRow> = q
            .order(orders::id.desc())
            .limit(msg.limit + 1)
            .select(OrderRow::as_select())
            .load(&mut conn)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut items = store::items_of(&mut conn, &ids)?;
        let next_cursor = crate::core::paging::trim_page(&mut rows, msg.limit, |r| vec![r.id]);
        Ok(Page {
            items: rows
                .iter()
                .map(|r| r.view(&items.remove(&r.id).unwrap_or_default()))
                .collect(),
            next_cursor,
        })
    }
}
