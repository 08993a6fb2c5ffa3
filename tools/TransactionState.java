// Prints the state of a transactional id as the transaction coordinator
// knows it (Empty, Ongoing, CompleteCommit, CompleteAbort, ...; "none" if the
// broker has never heard of it): kafka.sh transaction-state.
// Run as a single-file Java program with Kafka's client jars on the classpath.
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.errors.TransactionalIdNotFoundException;

public class TransactionState {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(props)) {
            var description = admin.describeTransactions(List.of(args[1])).description(args[1]).get();
            System.out.println(description.state());
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof TransactionalIdNotFoundException) {
                System.out.println("none");
            } else {
                throw e;
            }
        }
    }
}
