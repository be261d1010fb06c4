"""Provider clients (httpx): Credly and Accredible, errors mapped to retryable, auth, permanent."""
