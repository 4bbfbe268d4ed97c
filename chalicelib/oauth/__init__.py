"""The OAuth 2.0 protocol, free of Chalice: requests in, results or OAuthError out."""
