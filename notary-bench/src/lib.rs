pub mod load;
pub mod repo;
