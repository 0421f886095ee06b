//! Placeholder (the bench comes next).

fn main() {}
