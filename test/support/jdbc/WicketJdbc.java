// A JDBC client (PostgreSQL's own driver, as DBeaver uses) run through wicket by
// test/integration/postgres-jdbc.test.ts with Java's single-file launcher:
//   java -cp postgresql.jar WicketJdbc.java URL USER PASSWORD
// Prints one line per check; the test compares them.
import java.sql.*;
import java.util.Properties;

public class WicketJdbc {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", args[1]);
    p.setProperty("password", args[2]);
    p.setProperty("sslmode", "require");
    p.setProperty("ApplicationName", "jdbc-test");
    try (Connection c = DriverManager.getConnection(args[0], p)) {
      DatabaseMetaData md = c.getMetaData();
      System.out.println("server " + md.getDatabaseProductName());
      try (Statement s = c.createStatement()) {
        s.execute("create temp table jt (id int primary key, name text)");
      }
      // More executions than prepareThreshold (5): the driver switches to a named server-side statement.
      try (PreparedStatement ps = c.prepareStatement("insert into jt values (?, ?)")) {
        for (int i = 1; i <= 8; i++) {
          ps.setInt(1, i);
          ps.setString(2, "name-" + i);
          ps.executeUpdate();
        }
      }
      try (PreparedStatement ps = c.prepareStatement("select count(*), max(name) from jt where id > ?")) {
        ps.setInt(1, 2);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          System.out.println("count " + rs.getInt(1) + " max " + rs.getString(2));
        }
      }
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.executeUpdate("update jt set name = 'x' where id = 1");
      }
      c.rollback();
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select name from jt where id = 1")) {
        rs.next();
        System.out.println("after rollback " + rs.getString(1));
      }
      try (ResultSet rs = md.getTables(null, null, "pg_class", null)) {
        System.out.println("metadata " + (rs.next() ? rs.getString("TABLE_NAME") : "none"));
      }
    }
  }
}
