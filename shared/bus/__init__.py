"""The message bus: RabbitMQ and in-process, the handler runner and the topology."""
