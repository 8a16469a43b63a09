"""The public REST API (django-ninja): the bot for integrations, read access to the data, and API keys."""
