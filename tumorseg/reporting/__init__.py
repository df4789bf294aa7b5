"""Human-readable reports: Markdown pages with metric tables and overlay images."""
