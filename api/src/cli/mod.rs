//! The command line: `gemba serve`, `migrate`, `schema`, `seed`, `bench`,
//! `import` and `user`. `main.rs` parses, sets up logging and calls [`run`];
//! the jobs besides serving (seeding, benchmarks, imports) live beside this
//! file, apart from the request-serving code.

pub mod bench;
pub mod import;
pub mod live_bench;
pub mod seed;
mod serve;
pub mod synthetic;

use std::io::{BufRead, Write};

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::config::{DbArgs, ServeArgs};
use crate::db;
use serve::{print_logins, run_import, run_serve};

/// The parsed command line.
#[derive(Parser)]
#[command(
    name = "gemba",
    version,
    about = "Gemba: Value Stream Management server"
)]
pub struct Cli {
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
        /// Where flow metrics are computed: `memory` (loaded first) or `sql`.
        #[arg(long, env = "GEMBA_ANALYTICS", default_value = "memory")]
        analytics: crate::config::AnalyticsMode,
    },
    /// The Monte Carlo forecast's CPU cost (DESIGN §3.8): "when" and "how
    /// many" over a generated daily-throughput sample, median and p95 in
    /// milliseconds of one thread.
    Forecast {
        /// Trials per forecast.
        #[arg(long, default_value_t = 10_000)]
        trials: u32,
        /// Days in the sample.
        #[arg(long, default_value_t = 90)]
        sample_days: usize,
        /// Leaf items remaining, for "when".
        #[arg(long, default_value_t = 200)]
        remaining: u64,
        /// Days ahead, for "how many".
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Timed runs per series (after one warm-up run).
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Delivery progress and the forecast of one epic with many leaves
    /// (DESIGN §3.7, §3.8), loaded through the ingest path into the
    /// configured database (use a fresh one), median and p95 in
    /// milliseconds through the GraphQL schema.
    Progress {
        #[command(flatten)]
        db: DbArgs,
        /// Leaf stories below the epic.
        #[arg(long, default_value_t = 50_000)]
        leaves: usize,
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
        /// Subscribe the executive to `flowMetricsUpdates` of the
        /// organisation, a portfolio and a team (a third each) instead of
        /// the program manager to `workItemEvents` of a program.
        #[arg(long)]
        flow_metrics: bool,
        /// Events per second posted to `/ingest` beside the moves (new
        /// stories of team-atlas and their transitions, a batch a
        /// second); 0: none.
        #[arg(long, default_value_t = 0)]
        ingest_rate: u32,
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

/// Logs to stderr, filtered by `GEMBA_LOG` (or `RUST_LOG`; `info` by
/// default), as JSON with `GEMBA_LOG_FORMAT=json`.
pub fn init_tracing() {
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

/// Writes `text` to standard output: what a command prints for its user.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Runs the parsed command.
///
/// # Errors
/// Whatever the command fails with; `main` prints it and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => run_serve(args).await,
        Command::Migrate(db_args) => {
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Schema => out(&crate::graphql::sdl()),
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
            let opts = synthetic::Options {
                portfolios: args.portfolios,
                programs: args.programs,
                teams: args.teams,
                items: args.items,
                days: args.days,
                seed: args.seed,
            };
            let s = synthetic::generate(&conn, &opts).await?;
            out(&format!(
                "{} units, {} work items, {} transitions, {} deployments, {} changes, {} incidents in {:.1} s\n",
                s.units, s.items, s.transitions, s.deployments, s.changes, s.incidents, s.seconds
            ))
        }
        Command::Bench {
            what:
                BenchCommand::Metrics {
                    db: db_args,
                    runs,
                    analytics,
                },
        } => {
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            let series = bench::metrics(&conn, runs, analytics).await?;
            out(&bench::table(&series, runs))
        }
        Command::Bench {
            what:
                BenchCommand::Forecast {
                    trials,
                    sample_days,
                    remaining,
                    days,
                    runs,
                },
        } => out(&bench::forecast(&bench::ForecastBench {
            trials,
            sample_days,
            remaining,
            days,
            runs,
        })),
        Command::Bench {
            what:
                BenchCommand::Progress {
                    db: db_args,
                    leaves,
                    runs,
                },
        } => {
            let (conn, _) = db::connect(&db_args.url()).await?;
            db::migrate(&conn).await?;
            out(&bench::progress(&conn, leaves, runs).await?)
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
                    flow_metrics,
                    ingest_rate,
                },
        } => {
            let opts = live_bench::Options {
                url,
                password,
                subscribers,
                rate,
                seconds,
                server_pid,
                flow_metrics,
                ingest_rate,
            };
            let report = live_bench::run(&opts).await?;
            out(&live_bench::table(&report, &opts))
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
            let user = crate::service::users::insert_user(&conn, &email, &name, password)
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))?;
            if admin {
                let org = crate::service::units::organisation(&conn)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message()))?;
                crate::service::users::insert_membership(
                    &conn,
                    user.id,
                    &org,
                    crate::domain::Role::Admin,
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))?;
            }
            out(&format!("created user {} ({})\n", user.email, user.id))
        }
    }
}
