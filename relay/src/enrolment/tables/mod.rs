//! The enrolment tables' backends: embedded (sled) and PostgreSQL, behind
//! [`super::store`]'s trait.

pub mod pg_tables;
pub mod sled_tables;
