"""The Clipron resource API's domain logic (analyses and projects), free of Chalice and of OAuth."""
