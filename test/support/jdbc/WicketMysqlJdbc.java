// A JDBC client (MariaDB Connector/J, DBeaver's MariaDB driver) run through
// wicket by test/integration/mysql-jdbc.test.ts with Java's single-file launcher:
//   java -cp mariadb-java-client.jar WicketMysqlJdbc.java URL USER PASSWORD
// Prints one line per check; the test compares them.
import java.sql.*;
import java.util.Properties;

public class WicketMysqlJdbc {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", args[1]);
    p.setProperty("password", args[2]);
    try (Connection c = DriverManager.getConnection(args[0], p)) {
      DatabaseMetaData md = c.getMetaData();
      System.out.println("server " + md.getDatabaseProductName());
      try (Statement s = c.createStatement()) {
        s.execute("create temporary table jt (id int primary key, name varchar(40), price decimal(10,2), at datetime)");
      }
      // useServerPrepStmts=true in the URL: COM_STMT_PREPARE once, COM_STMT_EXECUTE per row.
      try (PreparedStatement ps = c.prepareStatement("insert into jt values (?, ?, ?, ?)")) {
        for (int i = 1; i <= 8; i++) {
          ps.setInt(1, i);
          ps.setString(2, "name-" + i);
          ps.setBigDecimal(3, new java.math.BigDecimal(i + ".25"));
          ps.setTimestamp(4, Timestamp.valueOf("2026-11-27 10:00:0" + i));
          ps.executeUpdate();
        }
      }
      try (PreparedStatement ps = c.prepareStatement("select count(*), max(name), sum(price) from jt where id > ?")) {
        ps.setInt(1, 2);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          System.out.println("count " + rs.getInt(1) + " max " + rs.getString(2) + " sum " + rs.getBigDecimal(3));
        }
      }
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.executeUpdate("update jt set name = 'x' where id = 1");
      }
      c.rollback();
      c.setAutoCommit(true);
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select name from jt where id = 1")) {
        rs.next();
        System.out.println("after rollback " + rs.getString(1));
      }
      try (ResultSet rs = md.getColumns(c.getCatalog(), null, "kept", null)) {
        System.out.println("metadata " + (rs.next() ? rs.getString("COLUMN_NAME") : "none"));
      }
      try (Statement s = c.createStatement()) {
        s.executeQuery("select * from no_such_table");
      } catch (SQLException e) {
        System.out.println("error " + e.getErrorCode());
      }
    }
  }
}
