//! The `callhook` command: parse the command line, then hand over to the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use callhook::config::{Overrides, Settings, help_text};

#[global_allocator]
static ALLOC: callhook::alloc::MiMalloc = callhook::alloc::MiMalloc;

#[derive(Parser)]
#[command(name = "callhook", version, about = "Real-time call webhooks for cloud telephony", after_help = help_text())]
struct Cli {
    /// TOML settings file (see the settings below).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct StoreFlags {
    /// Folder for the embedded SQLite database [CALLHOOK_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://… [CALLHOOK_DATABASE_URL].
    #[arg(long = "database", value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: REST API, web page, dispatcher.
    #[command(after_help = help_text())]
    Serve {
        /// Address to listen on [CALLHOOK_LISTEN].
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Re-encrypt every stored secret under secret_key (the old key in
    /// previous_secret_keys), then exit; nodes holding both keys keep running.
    #[command(after_help = help_text())]
    Rekey {
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Manage web sign-in users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Post realistic call flows to a callhook server, without a telephone switch.
    Simulate {
        /// The callhook server, like http://127.0.0.1:8080.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// An API key of the account to simulate calls for (its numbers are used).
        #[arg(long, value_name = "KEY", env = "CALLHOOK_API_KEY")]
        api_key: String,
        /// How many calls.
        #[arg(long, default_value_t = 20)]
        calls: u32,
        /// New calls per second.
        #[arg(long, value_name = "CALLS_PER_S", default_value_t = 2.0)]
        rate: f64,
        /// How much faster than real time calls run (60: a minute of call per second).
        #[arg(long, value_name = "X", default_value_t = 10.0)]
        speed: f64,
        /// Seed for the random flows; the same seed gives the same calls.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// A local receiver: prints every request callhook sends and answers 200.
    Listen {
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// The webhook's signing secret, to check signatures.
        #[arg(long, value_name = "whsec_…")]
        secret: Option<String>,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account; prints its id and a first API key.
    Create {
        name: String,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key for an account; prints it once.
    Create {
        #[arg(long, value_name = "ID")]
        account: String,
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a web sign-in user (by default an owner: the account's first, or one an
    /// operator adds); prints a generated password once.
    Create {
        #[arg(long, value_name = "ID")]
        account: String,
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// owner, admin or viewer.
        #[arg(long, default_value = "owner")]
        role: String,
        #[command(flatten)]
        store: StoreFlags,
    },
}

fn overrides(store: &StoreFlags, listen: Option<std::net::SocketAddr>) -> Overrides {
    Overrides {
        listen,
        data_dir: store.data_dir.clone(),
        database_url: store.database_url.clone(),
    }
}

fn main() -> std::process::ExitCode {
    callhook::alloc::tune();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("callhook: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callhook: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve { listen, store } => {
            let settings = Settings::load(config, &overrides(&store, listen))?;
            callhook::cli::serve(settings).await
        }
        Command::Migrate { store } => {
            let settings = Settings::load(config, &overrides(&store, None))?;
            callhook::cli::migrate(&settings).await
        }
        Command::Rekey { store } => {
            let settings = Settings::load(config, &overrides(&store, None))?;
            callhook::cli::init_tracing("warn");
            callhook::cli::rekey(&settings).await
        }
        Command::Account {
            command: AccountCommand::Create { name, store },
        } => {
            let settings = Settings::load(config, &overrides(&store, None))?;
            callhook::cli::create_account(&settings, &name).await
        }
        Command::Apikey {
            command:
                ApikeyCommand::Create {
                    account,
                    name,
                    store,
                },
        } => {
            let settings = Settings::load(config, &overrides(&store, None))?;
            callhook::cli::create_api_key(&settings, &account, &name).await
        }
        Command::User {
            command:
                UserCommand::Create {
                    account,
                    email,
                    role,
                    store,
                },
        } => {
            let settings = Settings::load(config, &overrides(&store, None))?;
            callhook::cli::create_user(&settings, &account, &email, &role).await
        }
        Command::Simulate {
            server,
            api_key,
            calls,
            rate,
            speed,
            seed,
            quiet,
        } => {
            let opts = callhook::simulate::Options {
                server,
                api_key,
                calls,
                rate,
                speed,
                seed,
                quiet,
            };
            callhook::simulate::run(opts).await
        }
        Command::Listen { port, secret } => callhook::listen::run(port, secret).await,
    }
}
