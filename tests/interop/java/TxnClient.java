// Kafka's Java client driving transactions against a broker, for tests/interop/test_txn_coordinator.py.
// Compiled there with javac against ../shared/kafka/libs.
//
//   TxnClient produce BOOTSTRAP TOPIC TXN_ID
//       one committed transaction (java-c-0..4 over partitions 0 and 1), one aborted
//       (java-a-0..2), one more committed (java-c-5); prints "done".
//   TxnClient ctp BOOTSTRAP IN OUT GROUP TXN_ID COUNT
//       consume-transform-produce, read_committed: every record of IN is written to OUT
//       upper-cased, with the consumer's offsets sent to the transaction
//       (sendOffsetsToTransaction with the group's metadata), until COUNT are done; prints "done".
//   TxnClient zombie BOOTSTRAP TOPIC TXN_ID
//       two producers with the same transactional id: the first is fenced by the second's
//       initTransactions; prints "fenced" when its commit fails with ProducerFencedException
//       (or the equivalent INVALID_PRODUCER_EPOCH), then commits with the second.

import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnClient {
    static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        return new KafkaProducer<>(p);
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "produce" -> produce(args[1], args[2], args[3]);
            case "ctp" -> ctp(args[1], args[2], args[3], args[4], args[5], Integer.parseInt(args[6]));
            case "zombie" -> zombie(args[1], args[2], args[3]);
            default -> throw new IllegalArgumentException(args[0]);
        }
    }

    static void produce(String bootstrap, String topic, String txnId) throws Exception {
        try (KafkaProducer<String, String> p = producer(bootstrap, txnId)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "java-c-" + i));
            }
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, null, "java-a-" + i));
            }
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 1, null, "java-c-5"));
            p.commitTransaction();
        }
        System.out.println("done");
    }

    static void ctp(String bootstrap, String in, String out, String group, String txnId, int count) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        int done = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c);
             KafkaProducer<String, String> p = producer(bootstrap, txnId)) {
            p.initTransactions();
            consumer.subscribe(Collections.singletonList(in));
            long deadline = System.currentTimeMillis() + 120_000;
            while (done < count && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                if (records.isEmpty()) {
                    continue;
                }
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    p.send(new ProducerRecord<>(out, r.key(), r.value().toUpperCase()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                p.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                p.commitTransaction();
                done += records.count();
            }
        }
        System.out.println(done >= count ? "done" : "stopped at " + done);
    }

    static void zombie(String bootstrap, String topic, String txnId) {
        KafkaProducer<String, String> first = producer(bootstrap, txnId);
        first.initTransactions();
        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, 0, null, "zombie-0"));
        first.flush();
        KafkaProducer<String, String> second = producer(bootstrap, txnId);
        // Aborts the first instance's open transaction and fences it.
        second.initTransactions();
        try {
            first.send(new ProducerRecord<>(topic, 0, null, "zombie-1"));
            first.commitTransaction();
            System.out.println("zombie committed");
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
            System.out.println("fenced");
        } catch (KafkaException e) {
            Throwable cause = e.getCause();
            boolean fenced = cause instanceof ProducerFencedException || cause instanceof InvalidProducerEpochException;
            System.out.println(fenced ? "fenced" : "unexpected " + e);
        } finally {
            first.close(Duration.ofSeconds(5));
        }
        second.beginTransaction();
        second.send(new ProducerRecord<>(topic, 0, null, "second-0"));
        second.commitTransaction();
        second.close();
        System.out.println("done");
    }
}
