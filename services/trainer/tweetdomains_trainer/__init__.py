"""tweetdomains trainer service."""
