//! The audit log: a row for every change, by whom, with the fields it moved; never a secret.
