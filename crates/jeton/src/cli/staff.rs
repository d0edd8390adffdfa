//! `jeton staff …`: the shop's people, who sign in to the console. The
//! first owner is made here; a password is read from standard input, never
//! from the command line (which other users of the machine can see).

use std::io::Read;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::{
    domain::{
        customer::{NAME_MAX, parse_email},
        password::Password,
        staff::Role,
        text::bounded,
    },
    hashing,
    http::staff::StaffMember,
    store::{
        Db,
        audit::Audit,
        staff::{StaffError, StaffKey, StaffRecord},
    },
};

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff member, with a password read from standard input.
    Create(CreateArgs),
    /// List the staff.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a member: their sessions end at once, they cannot sign in.
    Disable {
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled member again.
    Enable {
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Forget a member's second factor (a lost phone): their sessions end,
    /// and they sign in with their password alone until they enrol again.
    ResetMfa {
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a member another role; their live sessions hold it at once.
    Role {
        #[arg(long)]
        email: String,
        /// owner, developer, support or viewer.
        #[arg(long)]
        role: Role,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    /// owner, developer, support or viewer.
    #[arg(long)]
    role: Role,
    /// Read the password from standard input (its first line); required:
    /// a password is never taken from the command line.
    #[arg(long, required = true)]
    password_stdin: bool,
    #[arg(long)]
    json: bool,
}

fn print(member: StaffRecord, json: bool) {
    let member = StaffMember::from(member);
    if json {
        println!("{}", json!(member));
    } else {
        println!(
            "{}  {}  {}  {}",
            member.id,
            member.email,
            member.role,
            if member.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            }
        );
    }
}

fn explain(error: StaffError) -> anyhow::Error {
    match error {
        StaffError::LastOwner => anyhow::anyhow!(
            "last_owner: the last active owner cannot be disabled or demoted; make another owner first"
        ),
        StaffError::EmailTaken => anyhow::anyhow!("email_taken: a staff member has this email"),
        StaffError::NotFound => anyhow::anyhow!("not_found: no staff member has this email"),
        StaffError::Db(error) => error.into(),
    }
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    zeroize::Zeroize::zeroize(&mut text);
    Ok(line)
}

pub async fn run(db: &Db, command: StaffCommand) -> anyhow::Result<()> {
    let audit = Audit::cli();
    match command {
        StaffCommand::Create(args) => {
            let email = parse_email(&args.email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
            let name =
                bounded(&args.name, 1, NAME_MAX).map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let password = Password::parse(read_password()?)
                .map_err(|e| anyhow::anyhow!("the password {e}"))?;
            let hash = hashing::hash(password)
                .await
                .map_err(|_| anyhow::anyhow!("the password could not be hashed"))?;
            let member = db
                .create_staff(&email, &name, args.role, &hash, &audit)
                .await
                .map_err(explain)?;
            print(member, args.json);
        }
        StaffCommand::List { json } => {
            let staff = db.list_staff().await?;
            if json {
                let list: Vec<StaffMember> = staff.into_iter().map(StaffMember::from).collect();
                println!("{}", json!(list));
            } else {
                println!(
                    "{:<36}  {:<30}  {:<9}  {:<8}  NAME",
                    "ID", "EMAIL", "ROLE", "STATUS"
                );
                for member in staff {
                    println!(
                        "{:<36}  {:<30}  {:<9}  {:<8}  {}",
                        member.id,
                        member.email,
                        member.role().as_str(),
                        if member.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        member.name
                    );
                }
            }
        }
        StaffCommand::Disable { email, json } => {
            let email = crate::domain::customer::login_email(&email);
            let member = db
                .set_staff_disabled(&email, true, &audit)
                .await
                .map_err(explain)?;
            print(member, json);
        }
        StaffCommand::Enable { email, json } => {
            let email = crate::domain::customer::login_email(&email);
            let member = db
                .set_staff_disabled(&email, false, &audit)
                .await
                .map_err(explain)?;
            print(member, json);
        }
        StaffCommand::ResetMfa { email, json } => {
            let email = crate::domain::customer::login_email(&email);
            let member = db
                .reset_staff_mfa(StaffKey::Email(&email), &audit)
                .await
                .map_err(explain)?;
            print(member, json);
        }
        StaffCommand::Role { email, role, json } => {
            let email = crate::domain::customer::login_email(&email);
            let member = db
                .set_staff_role(&email, role, &audit)
                .await
                .map_err(explain)?;
            print(member, json);
        }
    }
    Ok(())
}
