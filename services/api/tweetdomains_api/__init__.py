"""tweetdomains api service."""
