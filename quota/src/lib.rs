//! ccgate's policy engine and the wire types shared by ccgate-proxy and
//! ccgate-server. Pure: no I/O, no clock (callers pass `now`).

pub mod attribution;
pub mod caps;
pub mod engine;
pub mod error_text;
pub mod limits;
mod message;
pub mod model;
pub mod policy;
pub mod release;
pub mod report;
pub mod rules;
pub mod seal;
pub mod share;
pub mod usage;
pub mod window;
pub mod wire;

pub use caps::{PromptCaps, UsageCap, prompt_caps};
pub use engine::{Decision, Denial, DenyReason, GateKind, GateRequest, evaluate};
pub use error_text::error_chain;
pub use message::{in_duration, thousands};
pub use model::{CreditWeights, ModelFamily};
pub use policy::{
    AgentTurns, CompiledPolicy, CredentialKind, CredentialMode, PersonalApiKeys, Policy,
    PolicyError, TurnLimits, UnidentifiedClients, UserRef, UserStatus,
};
pub use report::{LimitUsage, Metric, ScheduleState, ShareLimit, UsageReport};
pub use rules::{Limit, Rule, RuleError, RuleSpec, TokenKind};
pub use share::{ShareWindow, WindowShare};
pub use usage::{
    Layered, PerFamily, Reserved, Totals, UsageIndex, UsageSnapshot, UsageSource, WithShares,
};
pub use window::{Window, WindowBounds};
