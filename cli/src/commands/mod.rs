//! One module per subcommand.

pub mod check;
pub mod docs;
pub mod doctor;
pub mod lab;
pub mod list;
pub mod rr;
pub mod run;
pub mod serve;
