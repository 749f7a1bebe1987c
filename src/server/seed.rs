//! What a new installation starts with: the bootstrap admin
//! (`TANDEM_BOOTSTRAP_ADMIN`), and on a new database that wants it
//! (`TANDEM_DEMO`; by default only the zero-configuration `cargo run`) a demo:
//! an approved shop with tea, travel gear and flowers, two animals to claim
//! and a rebate rule set with three referral levels, so that a person who
//! opens the member app can sign up, buy, pay and see a rebate at once.
//! The demo goes through the same executor messages as the API.

use anyhow::Context as _;

use crate::accounts::auth::hash_password;
use crate::accounts::domain::{with_role, InviteCode, Role};
use crate::accounts::store::{self, UserRow};
use crate::core::config::{BootstrapAdmin, Config};
use crate::core::ids::{now_ms, IdGenerator, UserId};
use crate::storage::{Db, DbConn};

/// Makes sure the configured admin exists with that password and the admin role.
pub fn bootstrap_admin(
    conn: &mut DbConn,
    ids: &IdGenerator,
    admin: &BootstrapAdmin,
) -> anyhow::Result<()> {
    use crate::accounts::domain::{Password, Username};
    let username = Username::try_from(admin.username.clone())
        .map_err(|e| anyhow::anyhow!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
    let password = Password::try_from(admin.password.clone())
        .map_err(|e| anyhow::anyhow!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
    let hash = hash_password(password.as_str())?;
    match store::find_user_by_username(conn, &username.lower())? {
        Some(user) => {
            let roles = with_role(&user.roles, Role::Admin);
            store::set_password_and_roles(conn, user.id, &hash, &roles)?;
            tracing::info!(user_id = user.id, "bootstrap admin updated");
        }
        None => {
            let id = insert_user(conn, ids, username.as_str(), hash, Role::Admin)?;
            tracing::info!(user_id = id, "bootstrap admin created");
        }
    }
    Ok(())
}

fn insert_user(
    conn: &mut DbConn,
    ids: &IdGenerator,
    username: &str,
    password_hash: String,
    role: Role,
) -> anyhow::Result<i64> {
    let id = ids.next_id();
    let lower = username.to_lowercase();
    store::insert_user(
        conn,
        &UserRow {
            id,
            username: username.to_owned(),
            username_lower: lower.clone(),
            display_name: username.to_owned(),
            bio: String::new(),
            password_hash,
            roles: with_role(Role::User.as_str(), role),
            invite_code: InviteCode::generate(),
            inviter_id: None,
            banned: false,
            created_at_ms: now_ms(),
            display_name_lower: lower,
            avatar_media_id: None,
        },
    )?;
    Ok(id)
}

/// The demo's accounts, and what to tell the person who started it.
#[derive(Debug, Clone)]
pub struct DemoAccounts {
    admin_id: i64,
    shop_owner_id: i64,
    /// Printed on stdout after the listening line.
    pub lines: Vec<String>,
}

/// Creates the demo's admin (unless a bootstrap admin exists) and shop owner,
/// each with a fresh random password that is printed once.
pub fn demo_accounts(
    conn: &mut DbConn,
    ids: &IdGenerator,
    config: &Config,
) -> anyhow::Result<DemoAccounts> {
    let mut lines = vec![
        "demo: a shop, flowers, animals and rebate rules were created (TANDEM_DEMO)".to_owned(),
    ];
    let admin_id = match &config.bootstrap_admin {
        Some(a) => {
            store::find_user_by_username(conn, &a.username.to_lowercase())?
                .context("the bootstrap admin")?
                .id
        }
        None => {
            let password = crate::core::ids::random_token(16);
            lines.push(format!(
                "demo: admin console /admin as `admin`, password `{password}` (shown once)"
            ));
            insert_user(conn, ids, "admin", hash_password(&password)?, Role::Admin)?
        }
    };
    let password = crate::core::ids::random_token(16);
    lines.push(format!(
        "demo: merchant console /merchant as `demo_shop`, password `{password}` (shown once)"
    ));
    let shop_owner_id = insert_user(
        conn,
        ids,
        "demo_shop",
        hash_password(&password)?,
        Role::Merchant,
    )?;
    Ok(DemoAccounts {
        admin_id,
        shop_owner_id,
        lines,
    })
}

/// (name, category, price in fen, stock)
const PRODUCTS: [(&str, &str, i64, i64); 6] = [
    ("西湖龙井 Longjing tea 250 g", "tea", 12_800, 200),
    ("云南普洱茶饼 Pu'er tea cake", "tea", 8_900, 200),
    ("丽江徒步背包 Hiking backpack", "travel", 19_900, 100),
    ("红玫瑰 11 枝 Eleven red roses", "flowers", 9_900, 500),
    ("百合花束 Lily bouquet", "flowers", 12_900, 500),
    ("向日葵 Sunflowers", "flowers", 6_900, 500),
];

/// (name, species, description, claim price in fen, days)
const ANIMALS: [(&str, &str, &str, i64, i64); 2] = [
    (
        "小黑 Xiaohei",
        "黑猪 black pig",
        "Free-range in the hills of Guizhou.",
        28_800,
        180,
    ),
    (
        "咩咩 Miemie",
        "羊 lamb",
        "Grazes on the Inner Mongolian grassland.",
        19_900,
        90,
    ),
];

/// The shop, its products and animals, and the rules: through the executor,
/// as the API would, before the first request is served.
pub async fn demo_catalog(db: &Db, demo: &DemoAccounts) -> anyhow::Result<()> {
    use crate::animals::store::CreateAnimal;
    use crate::commerce::store::catalog::{ApplyMerchant, CreateProduct, DecideMerchant};
    use crate::rebates::store::requests::PutRules;
    let (owner, admin) = (user(demo.shop_owner_id)?, user(demo.admin_id)?);
    let shop = db
        .call(ApplyMerchant {
            owner,
            name: "结伴客优选 Tandem Select".into(),
        })
        .await?;
    db.call(DecideMerchant {
        admin,
        merchant_id: shop.merchant_id,
        approve: true,
    })
    .await?;
    for (name, category, price_cents, stock) in PRODUCTS {
        let (name, category) = (name.into(), category.into());
        let p = CreateProduct {
            owner,
            merchant_id: shop.merchant_id,
            name,
            category,
            price_cents,
            stock,
            image_media_id: None,
        };
        db.call(p).await?;
    }
    for (name, species, description, claim_price_cents, claim_days) in ANIMALS {
        let a = CreateAnimal {
            owner,
            merchant_id: shop.merchant_id,
            name: name.into(),
            species: species.into(),
            description: description.into(),
            claim_price_cents,
            claim_days,
            image_media_id: None,
        };
        db.call(a).await?;
    }
    let spec = serde_json::from_value(serde_json::json!({
        "rules": [{"name": "全场购物返利 3% / 3% back on everything", "rate_bps": 300}],
        "referral_levels_bps": [1000, 500, 200],
        "hold_seconds": 604_800
    }))?;
    db.call(PutRules { admin, spec }).await?;
    Ok(())
}

fn user(id: i64) -> anyhow::Result<UserId> {
    UserId::new(id).context("a demo account id")
}
