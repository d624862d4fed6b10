"""tweetdomains collector service."""
