//! In-process tests of the router: every route, jobs of kinds of their own, hostile requests,
//! failures only a mock can produce, the OpenAPI document and what it states exactly, and
//! serving on a real socket.

mod auth;
mod exact;
mod failures;
mod hostile;
mod kinds;
mod limits;
mod openapi;
mod routes;
mod serve;
mod support;
