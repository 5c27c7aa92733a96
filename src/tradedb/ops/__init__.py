"""Operations: migrate, setup, verify, health, backup and restore, partition maintenance, Prefect flows, the demo."""
