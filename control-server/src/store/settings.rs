//! Team settings and the policy version.
