pub mod conn;
pub mod load;
pub mod repo;
