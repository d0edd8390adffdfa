//! `jeton serve --demo`: a catalogue, a customer and a publishable key bound
//! to the storefront's origins, so a newcomer can try the storefront at once.
//! Running it again adds nothing: products are keyed by SKU, the customer by
//! email, and the demo client is reused, with a fresh key (a stored key
//! cannot be shown again); only a storefront on another address gets a new
//! demo client, since its origins differ.

use crate::identity::TOKENS;
use std::net::SocketAddr;

use jeton_auth::{AbilitySet, PlainToken};

use crate::{
    domain::{
        abilities::{AUTH_LOGIN, CUSTOMERS_CREATE, GUEST_CREATE, PRODUCTS_READ},
        client::{ClientKind, NewClient},
        password::Password,
        product::NewProduct,
    },
    hashing,
    store::{Db, audit::Audit, customers::CreateCustomerError},
    storefront,
};

pub const DEMO_EMAIL: &str = "demo@jeton.dev";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_CLIENT: &str = "Demo storefront";
/// Where `serve --demo` serves the storefront unless told otherwise.
pub const DEFAULT_STOREFRONT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3000);

/// (sku, name, price in cents, stock)
const CATALOGUE: [(&str, &str, i64, i64); 24] = [
    ("MUG-CLASSIC", "Classic mug", 1200, 40),
    ("MUG-TRAVEL", "Travel mug", 2400, 25),
    ("TEE-BLACK-M", "Black tee, M", 1900, 30),
    ("TEE-BLACK-L", "Black tee, L", 1900, 30),
    ("TEE-WHITE-M", "White tee, M", 1900, 20),
    ("HOODIE-GREY", "Grey hoodie", 4900, 15),
    ("CAP-NAVY", "Navy cap", 1500, 35),
    ("SOCKS-3PK", "Socks, three pairs", 1100, 60),
    ("TOTE-CANVAS", "Canvas tote", 1400, 50),
    ("NOTEBOOK-A5", "A5 notebook", 900, 80),
    ("PEN-BRASS", "Brass pen", 3200, 12),
    ("STICKERS", "Sticker pack", 400, 200),
    ("POSTER-A2", "Poster, A2", 1800, 10),
    ("BOTTLE-STEEL", "Steel bottle", 2600, 22),
    ("KEYCHAIN", "Keychain", 600, 90),
    ("BEANIE-RED", "Red beanie", 1700, 18),
    ("APRON", "Kitchen apron", 2200, 8),
    ("COASTERS-4", "Coasters, set of four", 1300, 26),
    ("CANDLE-CEDAR", "Cedar candle", 2100, 14),
    ("PUZZLE-500", "Puzzle, 500 pieces", 2300, 9),
    ("UMBRELLA", "Umbrella", 2900, 11),
    ("LANYARD", "Lanyard", 500, 120),
    ("BADGE-ENAMEL", "Enamel badge", 700, 75),
    ("LIMITED-PRINT", "Limited print (sold out)", 9900, 0),
];

pub struct Demo {
    pub products_added: usize,
    pub publishable_key: PlainToken,
    /// The origins the key is bound to.
    pub origins: Vec<String>,
}

/// Seeds the demo for a storefront served on `storefront`.
pub async fn seed(db: &Db, storefront: SocketAddr) -> anyhow::Result<Demo> {
    let origins = storefront::origins(storefront);
    let mut products_added = 0;
    for (sku, name, price, stock) in CATALOGUE {
        let product = NewProduct {
            sku: sku.to_owned(),
            name: name.to_owned(),
            description: format!("{name} from the Jeton demo shop."),
            price_amount: price,
            currency: "EUR".to_owned(),
            stock,
        };
        if db.create_product_if_missing(&product).await? {
            products_added += 1;
        }
    }

    let hash =
        hashing::hash(Password::parse(DEMO_PASSWORD.to_owned()).map_err(anyhow::Error::msg)?)
            .await?;
    match db.create_customer(DEMO_EMAIL, "Demo Customer", &hash).await {
        Ok(_) | Err(CreateCustomerError::EmailTaken) => {}
        Err(CreateCustomerError::Db(error)) => return Err(error.into()),
    }

    let publishable_key = TOKENS.generate(ClientKind::Publishable.token_kind());
    let existing = db
        .find_live_client_by_name(DEMO_CLIENT, ClientKind::Publishable)
        .await?;
    // The storefront's guests get their own cart tokens (API.md §16).
    let abilities = AbilitySet::new([PRODUCTS_READ, CUSTOMERS_CREATE, AUTH_LOGIN, GUEST_CREATE]);
    let existing = match existing {
        // A storefront on another address, or a client made before the
        // storefront needed what it holds now: a new client replaces the
        // old one (the customers' logins stay valid).
        Some(client) if client.allowed_origins != origins || client.abilities != abilities => {
            db.revoke_client(&client.id, false, &Audit::cli()).await?;
            None
        }
        other => other,
    };
    match existing {
        Some(client) => {
            db.rotate_client_key(
                &client.id,
                &publishable_key,
                time::Duration::ZERO,
                &Audit::cli(),
            )
            .await?;
        }
        None => {
            let client = NewClient {
                name: DEMO_CLIENT.to_owned(),
                kind: ClientKind::Publishable,
                abilities,
                allowed_origins: origins.clone(),
                rate_limit_per_minute: Some(6000),
                per_ip_rate_limit_per_minute: Some(300),
            };
            db.create_client(&client, &publishable_key, &Audit::cli())
                .await?;
        }
    }
    Ok(Demo {
        products_added,
        publishable_key,
        origins,
    })
}

impl Demo {
    /// Printed on stdout, not logged: the key is shown to the operator once
    /// and never reaches the log. The storefront's URL comes first: it is
    /// what a newcomer opens.
    pub fn print(&self, api: SocketAddr, storefront: SocketAddr) {
        println!("Storefront: {}", storefront::url(storefront));
        println!(
            "  publishable key (for {}): {}",
            self.origins.join(", "),
            self.publishable_key.expose_secret()
        );
        println!("  demo customer: {DEMO_EMAIL} / {DEMO_PASSWORD}");
        println!(
            "  API: http://{api} ({} demo products added this time)",
            self.products_added
        );
        println!(
            "  try: curl -H 'Authorization: Bearer {}' -H 'Origin: {}' http://{api}/api/v1/products",
            self.publishable_key.expose_secret(),
            self.origins[0]
        );
    }
}
