//! Asking every other core the same request: admin requests whose state every core holds a copy of
//! (apply everywhere) or a part of (gather and merge).
//!
//! The request travels over the mesh marked with [`CORE_PART`], so the receiving core answers for
//! itself only and does not fan out again.

use std::rc::Rc;

use tern_net::code::response;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::core::{reply, Core, Origin};

/// Extension field marking a request one core forwards to the others for their own part.
pub(crate) const CORE_PART: &str = "ternCorePart";

/// True when `req` was forwarded by another core for this core's part only.
pub(crate) fn is_core_part(req: &RemotingCommand) -> bool {
    req.ext(CORE_PART).is_some()
}

impl Core {
    /// Runs `req` on every other core, in core order, and returns their SUCCESS answers; the first
    /// other answer (or a SYSTEM_ERROR for a core that did not answer) is returned as the reply to
    /// give instead.
    pub(crate) async fn ask_other_cores(
        self: &Rc<Self>,
        req: &RemotingCommand,
        origin: Origin<'_>,
    ) -> Result<Vec<RemotingCommand>, Reply> {
        let mut answers = Vec::with_capacity(self.cores.saturating_sub(1));
        for other in (0..self.cores).filter(|&c| c != self.index) {
            let part = req.clone().with_ext(CORE_PART, "true");
            match self.run_on(other, part, origin).await {
                Some(r) if r.command.code == response::SUCCESS => answers.push(r.command),
                Some(r) => return Err(r),
                None => {
                    return Err(reply(
                        req,
                        response::SYSTEM_ERROR,
                        format!("core {other} did not answer"),
                    ))
                }
            }
        }
        Ok(answers)
    }
}
