//! `baton pool set | list | delete`: pools on the home or a server.

use baton_api::Pool;

use super::inspect::table;
use crate::backend::Backend;
use crate::cli::PoolCommand;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) async fn run(
    backend: &Backend,
    command: &PoolCommand,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    match command {
        PoolCommand::Set(args) => {
            let pool = backend
                .set_pool(&args.name, args.slots, args.description.as_deref())
                .await?;
            out.print(&format!(
                "pool `{}`: {} slot(s), {} used, {} waiting\n",
                pool.name, pool.slots, pool.used, pool.waiting
            ))?;
        }
        PoolCommand::List(args) => {
            let pools = backend.pools().await?;
            if args.json {
                out.print(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&pools).unwrap_or_default()
                ))?;
            } else if pools.is_empty() {
                out.print("no pools\n(hint: `baton pool set NAME --slots N`)\n")?;
            } else {
                out.print(&format!("{}\n", render(&pools)))?;
            }
        }
        PoolCommand::Delete(args) => {
            let pool = backend.delete_pool(&args.name).await?;
            out.print(&format!("deleted pool `{}`\n", pool.name))?;
        }
    }
    Ok(ExitStatus::Success)
}

fn render(pools: &[Pool]) -> comfy_table::Table {
    let mut t = table();
    t.set_header(["name", "slots", "used", "waiting", "description"]);
    for p in pools {
        t.add_row([
            p.name.clone(),
            p.slots.to_string(),
            p.used.to_string(),
            p.waiting.to_string(),
            p.description.clone().unwrap_or_default(),
        ]);
    }
    t
}
