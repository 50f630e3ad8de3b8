pub mod conn;
pub mod load;
pub mod procfs;
pub mod repo;
