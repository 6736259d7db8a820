//! `gemba serve` and `gemba import`: the two commands that open the
//! server's own configuration (the signing secret, the serving pool).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use rand::RngCore;

use super::{out, seed};
use crate::app::Application;
use crate::auth::TokenKeys;
use crate::config::{DbArgs, ServeArgs, Settings};
use crate::db;
use crate::http::shutdown_signal;
use crate::service::ingest::report::Report;

/// The signing secret: `GEMBA_JWT_SECRET`, or in the zero-configuration case
/// a generated one kept beside the database.
fn jwt_secret(args: &ServeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &args.jwt_secret {
        if s.len() < crate::auth::token::MIN_SECRET_LEN {
            bail!(
                "GEMBA_JWT_SECRET must be at least {} bytes long",
                crate::auth::token::MIN_SECRET_LEN
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
        if existing.len() >= crate::auth::token::MIN_SECRET_LEN {
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

pub(super) fn print_logins(logins: &[seed::DemoLogin]) -> anyhow::Result<()> {
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

pub(super) async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
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
    let app = Application::build(&url, keys, settings, args.bind).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, "listening");
    out(&format!(
        "Gemba is running.\n  Console:   http://{addr}/ (open in a browser and sign in)\n  GraphiQL:  http://{addr}/graphql (open in a browser)\n  Log in with the `login` mutation, then send `Authorization: Bearer <token>`.\n"
    ))?;
    app.run(shutdown_signal()).await?;
    Ok(())
}

pub(super) async fn run_import(db_args: &DbArgs, file: &str, dry_run: bool) -> anyhow::Result<()> {
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
    let mut show = |o: &Report, elapsed: std::time::Duration| {
        let rate = o.events as f64 / elapsed.as_secs_f64().max(1e-9);
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
    let outcome = super::import::import(&conn, reader, dry_run, &mut show).await?;
    let mut err = std::io::stderr().lock();
    if terminal {
        let _ = writeln!(err);
    }
    for r in &outcome.report.rejected {
        let _ = writeln!(
            err,
            "line {}: {} rejected: {}",
            r.line,
            r.id.as_deref().unwrap_or("(no id)"),
            r.reason.as_deref().unwrap_or("")
        );
    }
    drop(err);
    let s = outcome.report.summary;
    out(&format!(
        "{}{} applied, {} duplicates, {} rejected ({} events in {:.1}s)\n",
        if dry_run { "dry run: " } else { "" },
        s.applied,
        s.duplicates,
        s.rejected,
        outcome.report.events,
        outcome.elapsed.as_secs_f64()
    ))?;
    if s.rejected > 0 {
        bail!("{} events were rejected", s.rejected);
    }
    Ok(())
}
