//! In-process tests of the router: every route, hostile requests, failures only a mock can
//! produce, the OpenAPI document, and serving on a real socket.

mod failures;
mod hostile;
mod openapi;
mod routes;
mod serve;
mod support;
