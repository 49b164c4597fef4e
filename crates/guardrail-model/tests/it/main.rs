//! guardrail-model's integration tests: the adapters against loopback servers that speak each
//! provider's wire format (bodies as the providers document them, error bodies included).

mod agent_builder;
mod anthropic;
mod explainer;
mod openai;
mod server;
