//! `jeton serve --demo`: a catalogue, a customer and a publishable key, so a
//! newcomer can try the storefront at once. Running it again adds nothing:
//! products are keyed by SKU, the customer by email, and the demo client is
//! reused, with a fresh key (a stored key cannot be shown again).

use std::net::SocketAddr;

use jeton_auth::{AbilitySet, PlainToken};

use crate::{
    domain::{
        abilities::{AUTH_LOGIN, CUSTOMERS_CREATE, PRODUCTS_READ},
        client::{ClientKind, NewClient},
        password::Password,
        product::NewProduct,
    },
    hashing,
    store::{Db, audit::Audit, customers::CreateCustomerError},
};

pub const DEMO_EMAIL: &str = "demo@jeton.dev";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_CLIENT: &str = "Demo storefront";
pub const DEMO_ORIGIN: &str = "http://localhost:8080";

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
}

pub async fn seed(db: &Db) -> anyhow::Result<Demo> {
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

    let publishable_key = PlainToken::generate(ClientKind::Publishable.token_kind());
    match db
        .find_live_client_by_name(DEMO_CLIENT, ClientKind::Publishable)
        .await?
    {
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
                abilities: AbilitySet::new([PRODUCTS_READ, CUSTOMERS_CREATE, AUTH_LOGIN]),
                allowed_origins: vec![DEMO_ORIGIN.to_owned()],
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
    })
}

impl Demo {
    /// Printed on stdout, not logged: the key is shown to the operator once
    /// and never reaches the log.
    pub fn print(&self, addr: SocketAddr) {
        println!(
            "Jeton demo ({} products added this time)",
            self.products_added
        );
        println!(
            "  publishable key for {DEMO_ORIGIN}: {}",
            self.publishable_key.expose_secret()
        );
        println!("  demo customer: {DEMO_EMAIL} / {DEMO_PASSWORD}");
        println!(
            "  try: curl -H 'Authorization: Bearer {}' http://{addr}/api/v1/products",
            self.publishable_key.expose_secret()
        );
    }
}
