//! The worker node: its link to the coordinator (written by the lead).
