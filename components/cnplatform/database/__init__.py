"""database components: ``MySqlDatabase`` (in-cluster StatefulSet / RDS / Cloud SQL) and
``CloudSqlPrivateAccess`` (private services access for Cloud SQL, once per VPC)."""
from cnplatform.database.mysql import CloudSqlPrivateAccess, CloudSqlPrivateAccessArgs, MySqlDatabase, MySqlDatabaseArgs

__all__ = ["CloudSqlPrivateAccess", "CloudSqlPrivateAccessArgs", "MySqlDatabase", "MySqlDatabaseArgs"]
