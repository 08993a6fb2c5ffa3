// Prints what a consumer group committed, as Kafka's own Admin client reads
// it: one line per partition, `topic partition offset lag metadata` (lag =
// the partition's end offset minus the committed offset, as
// kafka-consumer-groups --describe shows it): kafka.sh group-offsets.
// Run as a single-file Java program with Kafka's client jars on the classpath.
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

public class GroupOffsets {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(props)) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(args[1]).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (TopicPartition tp : committed.keySet()) latest.put(tp, OffsetSpec.latest());
            var ends = admin.listOffsets(latest).all().get();
            for (var entry : committed.entrySet()) {
                TopicPartition tp = entry.getKey();
                long offset = entry.getValue().offset();
                long lag = ends.get(tp).offset() - offset;
                String metadata = entry.getValue().metadata();
                System.out.println(tp.topic() + " " + tp.partition() + " " + offset + " " + lag + " "
                    + (metadata == null || metadata.isEmpty() ? "-" : metadata));
            }
        }
    }
}
