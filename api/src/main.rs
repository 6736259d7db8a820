//! `gemba`: parse the command line, set up logging, run the subcommand.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Parser, Subcommand};
use gemba::auth::TokenKeys;
use gemba::config::{DbArgs, ServeArgs, Settings};
use gemba::graphql::Services;
use gemba::http::{AppState, serve, shutdown_signal};

/// mimalloc: the ingest path allocates many small strings per event, where
/// it is markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use gemba::{db, seed};
use rand::RngCore;

#[derive(Parser)]
#[command(
    name = "gemba",
    version,
    about = "Gemba: Value Stream Management server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve(ServeArgs),
    /// Apply database migrations.
    Migrate(DbArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Fill the database with example data.
    Seed {
        #[command(subcommand)]
        what: SeedCommand,
    },
    /// Backfill events of the common data model from an NDJSON file or a
    /// JSON array (`-` reads standard input). Re-running skips what was applied.
    Import {
        #[command(flatten)]
        db: DbArgs,
        /// The file, or `-` for standard input.
        file: String,
        /// Validate every event without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure metric queries against the database's organisation
    /// (after `gemba seed synthetic`; PostgreSQL).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand)]
enum SeedCommand {
    /// A small, realistic organisation with 90 days of history and one login per role.
    Demo(DbArgs),
    /// A large generated organisation for measuring metrics at scale
    /// (default: 10 × 10 × 10 units, 1,000,000 items over 2 years).
    Synthetic(SyntheticArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// flowMetrics and deliveryMetrics at every level for 90 days and 2
    /// years, beside the plain-SQL floor: median and p95 in milliseconds.
    Metrics {
        #[command(flatten)]
        db: DbArgs,
        /// Timed runs per series (after one warm-up run).
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Many subscribers on a running demo server and a steady stream of
    /// moves: event-to-delivery latency and the server's memory. See
    /// `docs/bench/live.sh`, which starts the server.
    Live {
        /// The server's GraphQL URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
        url: String,
        /// The demo logins' password (printed by `serve --demo`).
        #[arg(long, env = "GEMBA_DEMO_PASSWORD")]
        password: String,
        /// WebSocket connections, one subscription each.
        #[arg(long, default_value_t = 5000)]
        subscribers: usize,
        /// Moves per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Seconds of moves.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The server's process id, to read its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
}

#[derive(clap::Args)]
struct SyntheticArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Portfolios under the organisation.
    #[arg(long, default_value_t = 10)]
    portfolios: usize,
    /// Programs per portfolio.
    #[arg(long, default_value_t = 10)]
    programs: usize,
    /// Teams per program.
    #[arg(long, default_value_t = 10)]
    teams: usize,
    /// Work items in all (0.2% epics, 2% features, the rest team-level work).
    #[arg(long, default_value_t = 1_000_000)]
    items: usize,
    /// Days of history, ending now.
    #[arg(long, default_value_t = 730)]
    days: i64,
    /// Seed of the random generator: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user an admin of the organisation.
        #[arg(long)]
        admin: bool,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GEMBA_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GEMBA_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The signing secret: `GEMBA_JWT_SECRET`, or in the zero-configuration case
/// a generated one kept beside the database.
fn jwt_secret(args: &ServeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &args.jwt_secret {
        if s.len() < gemba::auth::token::MIN_SECRET_LEN {
            bail!(
                "GEMBA_JWT_SECRET must be at least {} bytes long",
                gemba::auth::token::MIN_SECRET_LEN
            );
        }
        return Ok(s.as_bytes().to_vec());
    }
    if !args.db.is_default() {
        bail!("GEMBA_JWT_SECRET is required when GEMBA_DATABASE_URL is set");
    }
    let path = Path::new("gemba.jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= gemba::auth::token::MIN_SECRET_LEN {
            tracing::warn!(
                file = %path.display(),
                "using the development JWT secret kept beside the database; set GEMBA_JWT_SECRET in production"
            );
            return Ok(existing.into_bytes());
        }
    }
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
    write_private(path, &secret)?;
    tracing::warn!(
        file = %path.display(),
        "generated a development JWT secret and saved it beside the database; set GEMBA_JWT_SECRET in production"
    );
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(text.as_bytes())?;
    }
    #[cfg(not(unix))]
    std::fs::write(path, text)?;
    Ok(())
}

fn print_logins(logins: &[seed::DemoLogin]) -> anyhow::Result<()> {
    let mut text = String::from("\nDemo logins (shown once; the password is the same for all):\n");
    for l in logins {
        text.push_str(&format!(
            "  {:<18} {:<28} {}\n",
            l.role, l.email, l.password
        ));
    }
    text.push('\n');
    out(&text)
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let secret = jwt_secret(&args)?;
    let keys = TokenKeys::new(&secret)?;
    let settings = Settings::from_args(&args);
    let url = args.db.url();
    // Migrations and the demo seed run on a pool of their own: the server's
    // pool bounds every statement by the request deadline.
    let (setup, _) = db::connect(&url)
        .await
        .context("cannot open the database")?;
    db::migrate(&setup).await.context("migration failed")?;
    if args.demo
        && let Some(logins) = seed::demo(&setup, None).await?
    {
        print_logins(&logins)?;
    }
    let _ = setup.close().await;
    let (conn, statements) = db::connect_with(&url, &db::PoolOptions::serving(&url, &settings))
        .await
        .context("cannot open the database")?;
    let bus = gemba::events::EventBus::default();
    let live = gemba::events::live::LiveHub::start(&conn, &bus);
    let state = AppState::new(conn, statements, Services::new(keys, settings, bus, live));
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    out(&format!(
        "Gemba is running.\n  GraphiQL:  http://{addr}/graphql (open in a browser)\n  Log in with the `login` mutation, then send `Authorization: Bearer <token>`.\n"
    ))?;
    serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

async fn run_import(db_args: &DbArgs, file: &str, dry_run: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let (conn, _) = db::connect(&db_args.url()).await?;
    db::migrate(&conn).await?;
    let reader: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = std::time::Instant::now();
    let mut show = |o: &gemba::import::Outcome| {
        let rate = o.events as f64 / o.elapsed.as_secs_f64().max(1e-9);
        let text = format!(
            "{} events ({rate:.0}/s): {} applied, {} duplicates, {} rejected",
            o.events, o.summary.applied, o.summary.duplicates, o.summary.rejected
        );
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r\x1b[2K{text}");
        } else if last_line.elapsed() >= std::time::Duration::from_secs(5) {
            let _ = writeln!(err, "{text}");
            last_line = std::time::Instant::now();
        }
    };
    let outcome = gemba::import::import(&conn, reader, dry_run, &mut show).await?;
    let mut err = std::io::stderr().lock();
    if terminal {
        let _ = writeln!(err);
    }
    for r in &outcome.rejected {
        let _ = writeln!(
            err,
            "line {}: {} rejected: {}",
            r.line,
            r.id.as_deref().unwrap_or("(no id)"),
            r.reason.as_deref().unwrap_or("")
        );
    }
    drop(err);
    let s = outcome.summary;
    out(&format!(
        "{}{} applied, {} duplicates, {} rejected ({} events in {:.1}s)\n",
        if dry_run { "dry run: " } else { "" },
        s.applied,
        s.duplicates,
        s.rejected,
        outcome.events,
        outcome.elapsed.as_secs_f64()
    ))?;
    if s.rejected > 0 {
        bail!("{} events were rejected", s.rejected);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => run_serve(args).await,
        Command::Migrate(db_args) => {
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Schema => out(&gemba::graphql::sdl()),
        Command::Seed {
            what: SeedCommand::Demo(db_args),
        } => {
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            match seed::demo(&conn, None).await? {
                Some(logins) => print_logins(&logins),
                None => bail!(
                    "the database already holds an organisation; demo data goes into an empty database only"
                ),
            }
        }
        Command::Seed {
            what: SeedCommand::Synthetic(args),
        } => {
            let (conn, _) = db::connect(&args.db.url()).await?;
            db::migrate(&conn).await?;
            let opts = gemba::synthetic::Options {
                portfolios: args.portfolios,
                programs: args.programs,
                teams: args.teams,
                items: args.items,
                days: args.days,
                seed: args.seed,
            };
            let s = gemba::synthetic::generate(&conn, &opts).await?;
            out(&format!(
                "{} units, {} work items, {} transitions, {} deployments, {} changes, {} incidents in {:.1} s\n",
                s.units, s.items, s.transitions, s.deployments, s.changes, s.incidents, s.seconds
            ))
        }
        Command::Bench {
            what: BenchCommand::Metrics { db: db_args, runs },
        } => {
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            let series = gemba::bench::metrics(&conn, runs).await?;
            out(&gemba::bench::table(&series, runs))
        }
        Command::Bench {
            what:
                BenchCommand::Live {
                    url,
                    password,
                    subscribers,
                    rate,
                    seconds,
                    server_pid,
                },
        } => {
            let opts = gemba::live_bench::Options {
                url,
                password,
                subscribers,
                rate,
                seconds,
                server_pid,
            };
            let report = gemba::live_bench::run(&opts).await?;
            out(&gemba::live_bench::table(&report, &opts))
        }
        Command::Import {
            db: db_args,
            file,
            dry_run,
        } => run_import(&db_args, &file, dry_run).await,
        Command::User {
            action:
                UserCommand::Create {
                    db: db_args,
                    email,
                    name,
                    password_stdin: _,
                    admin,
                },
        } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            let user = gemba::service::users::insert_user(&conn, &email, &name, password)
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))?;
            if admin {
                let org = gemba::service::units::organisation(&conn)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message()))?;
                gemba::service::users::insert_membership(
                    &conn,
                    user.id,
                    &org,
                    gemba::domain::Role::Admin,
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))?;
            }
            out(&format!("created user {} ({})\n", user.email, user.id))
        }
    }
}
