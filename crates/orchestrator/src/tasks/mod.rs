//! Pipeline task kinds declared in `pipelines/*.yaml`: [`command`] runs a program (its output
//! goes to the log; with a `target`, the loader reads it through
//! `tributary_connectors::command::CommandSource` instead), [`http`] calls an endpoint and
//! optionally polls a status URL until the work it started is done.
//!
//! Both return a [`crate::TaskError`] whose class tells the executor
//! whether a retry may help, and both stop cleanly when their future is dropped (a timeout) or
//! their `CancellationToken` is cancelled.

pub mod command;
pub mod http;

pub use command::{CommandContext, CommandOutcome, run_command};
pub use http::{HttpContext, HttpOutcome, run_http};
