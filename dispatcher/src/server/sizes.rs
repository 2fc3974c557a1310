//! How large one message may be, per service: what the servers are built
//! with and what the refusals over it say.

/// Largest command request or response: a city's roster (hundreds of
/// thousands of people) or map fits; send bigger ones in parts.
pub(super) const MAX_COMMAND_MESSAGE: usize = 256 * 1024 * 1024;

/// Largest message a person's app may send: a field report's text and a
/// photo reference fit many times over.
pub(super) const MAX_AGENT_MESSAGE: usize = 64 * 1024;
